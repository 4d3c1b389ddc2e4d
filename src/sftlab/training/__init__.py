"""What runs a fit and is not the model or the data: the `sftlab fit` CLI, the precision policy, checkpoints
and resume, strategies, and the callbacks for exports, sample answers, throughput, the non-finite-step
guard and the data report."""

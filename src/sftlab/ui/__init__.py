"""`sftlab ui`: a local web page to chat with a trained model (optional `ui` extra: Gradio)."""

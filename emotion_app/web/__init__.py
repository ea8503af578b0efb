"""The web app: Gradio page (one module per tab), REST routes, server start-up."""

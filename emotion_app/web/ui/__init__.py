"""The Gradio page: its shell, one module per tab, the shared widgets and the HTML/SVG views."""

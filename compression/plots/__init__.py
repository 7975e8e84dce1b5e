"""Figure builders: plain data in, a plotly go.Figure out. No torch, no streamlit (checked by .importlinter)."""

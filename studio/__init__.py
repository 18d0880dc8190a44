"""SelfMix Studio's Streamlit side: shared page helpers (state), the background
training worker (worker), plotly figures (charts) and upload parsing (uploads).
The pages (app.py, pages/*.py) stay thin and call into these and selfmix_core."""

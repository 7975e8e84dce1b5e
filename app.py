"""Compression Lab: the router. Pages live in pages/; the shared sidebar model picker in ui/common.py."""

import streamlit as st

from compression.core import logs
from compression.core.threads import use_threads
from ui import routing

use_threads()  # one torch thread per request unless $COMPRESSION_LAB_TORCH_THREADS says otherwise (README)
logs.configure()  # failures leave their traceback in the log file (README); the page shows one line

# A page_icon of our own: with material icons on pages, the browser would otherwise fetch a favicon online.
st.set_page_config(page_title="Compression Lab", page_icon="🗜️", layout="wide")
# .streamlit/config.toml hides the sidebar navigation Streamlit draws from the pages/ folder's file names before
# this script has run (a first visit after a server start); the navigation below is ours, so it is shown.
st.set_option("client.showSidebarNavigation", True)

PAGES = [
    # The default page lives at "/" (a url_path on it would make /model a "page not found").
    st.Page("pages/model.py", title="Model", icon=":material/neurology:", default=True),
    st.Page("pages/prune.py", title="Pruning", icon=":material/content_cut:", url_path="prune"),
    st.Page("pages/quantize.py", title="Quantization", icon=":material/tune:", url_path="quantize"),
    st.Page("pages/distill.py", title="Distillation", icon=":material/school:", url_path="distill"),
    st.Page("pages/pipeline.py", title="Pipeline", icon=":material/account_tree:", url_path="pipeline"),
    st.Page("pages/language_model.py", title="Language models", icon=":material/chat:", url_path="lm"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
]

navigation = st.navigation(PAGES)  # before the model picker's imports (torch: seconds on a first run)
routing.page_style()
from ui import common  # noqa: E402  (imports torch: after the navigation, so it is drawn first)

with routing.routing():
    common.model_picker()
    navigation.run()

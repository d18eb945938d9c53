"""Other engines' formats: AWS Step Functions (ASL) and Seata state-language JSON, read into a
model, and a model written back as a Step Functions definition.

The format of a file is detected from its content; every command reads all three languages.
"""

from .asl import from_asl
from .export import structural, to_asl, to_asl_files
from .load import FORMATS, detect_format, load_any, to_yaml_with_comments
from .seata import from_seata

__all__ = [
    "FORMATS",
    "detect_format",
    "from_asl",
    "from_seata",
    "load_any",
    "structural",
    "to_asl",
    "to_asl_files",
    "to_yaml_with_comments",
]

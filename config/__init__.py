"""Stack configuration: read once, validated into frozen pydantic models.

`load_stack_config()` is the only entry point the program uses; everything else in this
package is data (seed targets, regions, phase presets) and the models themselves.
"""

from config.errors import ConfigError
from config.loader import load_stack_config, parse_stack_config
from config.models import StackConfig

__all__ = ["ConfigError", "StackConfig", "load_stack_config", "parse_stack_config"]

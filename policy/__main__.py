"""Entry point of the policy pack: `pulumi preview --policy-pack policy`.

The CLI runs this file with the pack's folder as the working directory; the rules import
the project's config (the default tag keys, the seed's backup retention), so the project
root goes on the path first, as the Python language host does for the program.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policy.pack import PACK_NAME, policies  # noqa: E402

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY,
           policies=policies())

"""The Notiflow AWS CDK v2 app: one stack, synthesized and checked offline by ``python -m infrastructure.synth``."""

import os

# jsii (the bridge to the CDK's JavaScript core) prints a banner on Node 20, which is still installed
# on build machines; it changes nothing about the synthesized output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

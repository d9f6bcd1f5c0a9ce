"""The served memory agent (Ray Serve). `memorylab.serve:build_app` is the import path for `serve run`,
`serve deploy` and a RayService's serveConfigV2."""

from memorylab.serve.app import build_app  # noqa: F401

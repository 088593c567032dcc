"""OpenVINO IR conversion and runtime."""

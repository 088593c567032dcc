"""Core ML: coremltools from the torch graph; validated on Linux, run on macOS."""

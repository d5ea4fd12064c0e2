"""What a hardware team receives: verification, the bundle, the report, the demo."""

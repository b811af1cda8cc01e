"""Other engines that can grade the same eval files: Promptfoo (export, run as backend, import)."""

"""The BPMN engine layer: the only package that imports SpiffWorkflow (ARCHITECTURE.md "The workflow engine")."""

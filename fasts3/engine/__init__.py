"""The transfer engine: plan -> pool -> worker -> transport."""

"""Research: parameter sweeps with walk-forward selection and honest statistics."""

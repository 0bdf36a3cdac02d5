"""Using a trained network: loading it for inference (`network`), class names (`class_names`), top-1/top-5
evaluation (`evaluate`), prediction (`predict`) and export to deployment formats (`export`)."""

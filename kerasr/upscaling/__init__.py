"""Running an upscaler: `inference` (the tiling `Upscaler`) on `inference_graph` (the
networks' forward pass arranged for inference), `files` (images and folders of them),
`video` (a video through the `Upscaler`, on `kerasr.video`), and `export` with
`export_formats` (SavedModel, ONNX, LiteRT)."""

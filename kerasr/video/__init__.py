"""Video files through PyAV (FFmpeg), with no model in sight: `probe` (what a file is: video or
not, frame rate, rotation), `decode` (frames in order, a thread ahead), `segments` (closed
segments encoded behind, joined at the end), `work` (the work folder that makes a run
resumable) and `colour` (YUV <-> RGB with the matrix and range a video is tagged with).
`kerasr.upscaling.video` runs the model over these frames."""

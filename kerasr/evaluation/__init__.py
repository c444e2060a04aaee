"""Scoring networks: `sr` (the SR protocol of the papers: MATLAB bicubic LR, Y-channel PSNR
and SSIM on a cropped border), `gan` (KID, Frechet distance and a two-sample test on a named
feature network) and `collapse` (a GAN run's collapse signals: diversity and copies of the
training set)."""

"""Training harnesses (keras.Model subclasses with a custom `train_step`) and their callbacks.

Import the recipe you need (`kerasr.training.train_dcgan`; `kerasr.training.train_sr` for the SR
pretrain / GAN stages); this package itself stays light.
"""

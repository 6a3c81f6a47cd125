"""menet-tf: MENET single-image de-raining in TensorFlow 2 / Keras 3.

Modules, one concept each:
  layers     -- SpaceToDepth, DepthToSpace, ConvBN, ResidualBlock, ChannelAttention, GlobalResidual
  model      -- build_derain_net (the de-raining network f_w), model-dir loading
  losses     -- L_p, L_e (Sobel loss network), L_t (texture), VGG19 perceptual
  weighting  -- fixed, gradient balance (GB) and loss balance (LB) task weights
  trainer    -- MultiTaskTrainer: the custom train_step / test_step
  pairs      -- pair discovery in a data folder, checks, duplicate backgrounds, grouped splits
  data       -- the five-crop training and evaluation pipelines (re-exports pairs' names)
  patch_source -- --cache=memory/disk/none patch sources for training
  synthesis  -- rain rendering (light / heavy, streak scale, haze)
  imageio    -- any image file -> RGB uint8, atomic image writes
  pretrained -- the shipped models
  metrics    -- paper-protocol and standard-protocol (Y channel) PSNR / SSIM
  export     -- SavedModel / TFLite export
  inference  -- padded and tiled de-raining of images of any size
"""

__version__ = "0.1.0"

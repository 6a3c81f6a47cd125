"""menet-tf: MENET single-image de-raining in TensorFlow 2 / Keras 3.

Modules, one concept each:
  layers     -- SpaceToDepth, DepthToSpace, ConvBN, ResidualBlock, ChannelAttention, GlobalResidual
  model      -- build_derain_net (the de-raining network f_w), model-dir loading
  losses     -- L_p, L_e (Sobel loss network), L_t (texture), VGG19 perceptual
  weighting  -- fixed, gradient balance (GB) and loss balance (LB) task weights
  trainer    -- MultiTaskTrainer: the custom train_step / test_step
  data       -- pair discovery, five-crop pipelines, image reading and checks
  metrics    -- paper-protocol and standard-protocol (Y channel) PSNR / SSIM
  export     -- SavedModel / TFLite export
  inference  -- padded and tiled de-raining of images of any size
"""

__version__ = "0.1.0"

"""The paper's published numbers (spec section 8), for tables printed next to ours.

All are paper-protocol numbers (224x224 five-crops with flips, RGB, tf.image PSNR/SSIM), as
(SSIM, PSNR). Table I's are the released Rain100H log; Tables II and IV give Rain100L too.
"""

# row name (flagfile stem) -> {"Rain100H": (ssim, psnr), "Rain100L": (ssim, psnr)}
PUBLISHED = {
    "lp": {"Rain100H": (0.8146, 27.5016), "Rain100L": (0.9506, 33.5484)},
    "lp_le_fixed": {"Rain100H": (0.8200, 27.6132), "Rain100L": (0.9508, 33.5116)},
    "lp_le_gb": {"Rain100H": (0.8457, 27.8344)},
    "lp_le_lb": {"Rain100H": (0.8393, 27.9586)},
    "lp_le_lt_gb": {"Rain100H": (0.8465, 27.7977)},
    "lp_le_lt_lb": {"Rain100H": (0.8472, 27.7668)},
    "lp_le_lt_gb_ca": {"Rain100H": (0.8524, 28.1458), "Rain100L": (0.9554, 34.1852)},
    "lp_le_lt_lb_ca": {"Rain100H": (0.8535, 28.1573), "Rain100L": (0.9548, 34.0846)},
    "menet_gb_deep": {"Rain100H": (0.8610, 28.7399), "Rain100L": (0.9559, 34.2239)},
    "menet_lb_deep": {"Rain100H": (0.8591, 28.7167), "Rain100L": (0.9556, 34.1839)},
    "mse": {"Rain100H": (0.8146, 27.5016), "Rain100L": (0.9506, 33.5484)},
    "mse_vgg_fixed": {"Rain100H": (0.8210, 27.6265), "Rain100L": (0.9550, 33.8075)},
    "mse_edge_fixed": {"Rain100H": (0.8200, 27.6132), "Rain100L": (0.9508, 33.5116)},
}

# Standard-protocol "Input" rows (rainy input vs clean, MATLAB Y): Rain100L 26.90 / 0.838.
PUBLISHED_INPUT_STANDARD = {"Rain100L": (0.838, 26.90)}

# Table III: seconds per 224x224 image.
TABLE3_SECONDS_PER_224 = {"cpu": 0.6578, "gpu": 0.0030}

# Display names of the Table I rows, in the paper's order.
TABLE1_ORDER = (
    ("lp", "L_p"),
    ("lp_le_fixed", "L_pL_e + Fixed"),
    ("lp_le_gb", "L_pL_e + GB"),
    ("lp_le_lb", "L_pL_e + LB"),
    ("lp_le_lt_gb", "L_pL_eL_t + GB"),
    ("lp_le_lt_lb", "L_pL_eL_t + LB"),
    ("lp_le_lt_gb_ca", "L_pL_eL_t + GB + CA (MENET-GB)"),
    ("lp_le_lt_lb_ca", "L_pL_eL_t + LB + CA (MENET-LB)"),
    ("le", "L_e alone (Fig. 8)"),
    ("lp_ca", "L_p + CA (Fig. 8)"),
)

# Training data and command of menet-lb-storm (issue 20, heavy rain, fainter and more varied than menet-lb-downpour's):
# the storm recipe of data_prep.heavy_rain (RainTrainH's heavy rain moved onto 150 BSDS500 photos and the Rain100L
# train-half backgrounds, four renderings each, turned by up to 25 degrees, 1-2.5 layers, on the photos also
# 0.25-1x as bright; the default's light data; 96 rain-free pairs; the RainTrainH and Rain100L training pairs).
# Held out: the heavy test set of data_prep.heavy_rain --make=test, the Rain100L test half and its clean images.
# Run from the repository root; ../shared/data as in the README.
set -e
S=$PWD/../shared/data
python -m data_prep.heavy_rain --make=train --recipe=storm --shared=$S --out=runs/storm2_train   # 1089 pairs, 100-210 s
python -m data_prep.heavy_rain --make=test --shared=$S --out=runs/heavy_test                     # 55 pairs, 9 s
mkdir -p runs/rain100l_half/test
for i in $(seq 1 50); do n=$(printf %03d $i)
  ln -sf $S/Rain100L/rain-$n.png $S/Rain100L/norain-$n.png runs/rain100l_half/test/; done
# fine-tuned from menet-lb-downpour (whose data holds nothing of the held-out sets either);
# 1089 pairs x 10 patches / 20 = 544 steps per epoch; 9 epochs = 4,896 steps, learning rate 5e-4, x0.1 at epoch 6
python -m experiments.train --flagfile=experiments/table1/lp_le_lt_lb_ca.flags --data_dir=runs/storm2_train/train \
    --rainy_glob='*/rain-*' --clean_glob='*/norain-*' --model_dir=runs/menet_lb_storm2 \
    --init_from=menet-lb-downpour --epochs=9 --lr=5e-4 --lr_decay_epochs=6 --mixed_precision --seed=0
python -m experiments.ship_model --model_dir=runs/menet_lb_storm2 --name=menet-lb-storm \
    --summary="MENET-LB (8 residual blocks + channel attention) for heavy rain, light to bright: RainTrainH's rain moved onto BSDS500 photos and Rain100L backgrounds at 1-3x, turned up to 25 degrees, up to 2.5 layers, 0.25-1x as bright, with the light data of the default and rain-free pairs" \
    --training_data_file=docs/model_cards/menet-lb-storm_data.md --commands_file=docs/model_cards/menet-lb-storm_commands.sh \
    --train_wall_time_s=5225 \
    --license_note="Trained on BSDS500 photos (research use) and on Rain100L and RainTrainH and their rain (research data sets distributed by their authors for research use); use these weights under the same terms." \
    --test_dirs="Rain100L test half (pairs 1-50)=runs/rain100l_half/test" \
    --rain_free_dirs="Rain100L test half (pairs 1-50)=runs/rain100l_half/test"
# the held-out heavy set in the standard protocol (as on every card)
python -m experiments.ship_model --name=menet-lb-storm --add_scores --test_protocols=standard \
    --test_dirs="Held-out heavy rain (data_prep.heavy_rain --make=test)=runs/heavy_test"

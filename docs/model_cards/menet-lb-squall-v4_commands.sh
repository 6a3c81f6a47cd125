# Training data and command of menet-lb-squall-v4 (issue 20: the default for real photos, light and heavy rain):
# menet-lb-squall-v3's 1677 pairs (the squall recipe of data_prep.heavy_rain, light rain read twice) and the same
# pairs upside down (data_prep.flip): menet-lb-squall-v3 trained 4 epochs more on the 3354.
# Held out: the heavy test set of data_prep.heavy_rain --make=test, the Rain100L test half and its clean images.
# Run from the repository root; ../shared/data as in the README.
set -e
S=$PWD/../shared/data
python -m data_prep.heavy_rain --make=train --recipe=squall --shared=$S --out=runs/squall_train   # 1481 pairs, 150-300 s
python -m data_prep.heavy_rain --make=test --shared=$S --out=runs/heavy_test                      # 55 pairs, 9 s
mkdir -p runs/rain100l_half/test
for i in $(seq 1 50); do n=$(printf %03d $i)
  ln -sf $S/Rain100L/rain-$n.png $S/Rain100L/norain-$n.png runs/rain100l_half/test/; done
# the light folders a second time (a second name for the same files: their pairs are read twice per epoch)
ln -sfn light_bsds runs/squall_train/train/light_bsds_again
ln -sfn rain100l runs/squall_train/train/rain100l_again
# every pair upside down (1677 pairs, about 3 min), and one folder that holds both
python -m data_prep.flip --data_dir=runs/squall_train/train --rainy_glob='*/rain-*' --clean_glob='*/norain-*' \
    --flip=ud --out=runs/squall_train/train_upside_down
mkdir -p runs/squall_ud/train
for d in runs/squall_train/train/*; do n=$(basename $d)
  ln -sfn ../../squall_train/train/$n runs/squall_ud/train/$n
  ln -sfn ../../squall_train/train_upside_down/$n runs/squall_ud/train/${n}_ud; done
# 3354 pairs x 10 patches / 20 = 1677 steps per epoch; 4 epochs = 6,708 steps, learning rate 1e-4, x0.1 at epoch 3
python -m experiments.train --flagfile=experiments/table1/lp_le_lt_lb_ca.flags --data_dir=runs/squall_ud/train \
    --rainy_glob='*/rain-*' --clean_glob='*/norain-*' --model_dir=runs/menet_lb_squall_ud \
    --init_from=menet-lb-squall-v3 --epochs=4 --lr=1e-4 --lr_decay_epochs=3 --mixed_precision --seed=5
python -m experiments.ship_model --model_dir=runs/menet_lb_squall_ud --name=menet-lb-squall-v4 \
    --summary="MENET-LB (8 residual blocks + channel attention) for real photos, light and heavy rain: menet-lb-squall-v3's data (RainTrainH's rain moved onto BSDS500 photos and Rain100L backgrounds, 0.4-3x, turned, 1-3 layers; light data read twice; rain-free pairs) and the same pairs upside down, fine-tuned from menet-lb-squall-v3" \
    --training_data_file=docs/model_cards/menet-lb-squall-v4_data.md --commands_file=docs/model_cards/menet-lb-squall-v4_commands.sh \
    --train_wall_time_s=6701 --self_ensemble \
    --license_note="Trained on BSDS500 photos (research use) and on Rain100L and RainTrainH and their rain (research data sets distributed by their authors for research use); use these weights under the same terms." \
    --test_dirs="Rain100L test half (pairs 1-50)=runs/rain100l_half/test" \
    --rain_free_dirs="Rain100L test half (pairs 1-50)=runs/rain100l_half/test"
# the held-out heavy set in the standard protocol (as on every card), also with the self-ensemble
python -m experiments.ship_model --name=menet-lb-squall-v4 --add_scores --test_protocols=standard --self_ensemble \
    --test_dirs="Held-out heavy rain (data_prep.heavy_rain --make=test)=runs/heavy_test"

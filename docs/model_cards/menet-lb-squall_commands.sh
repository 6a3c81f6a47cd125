# Training data and command of menet-lb-squall (issue 20, heavy rain for real photos: menet-lb-storm's data plus
# finer rain): the squall recipe of data_prep.heavy_rain (the storm recipe, plus RainTrainH's heavy rain shrunk
# 0.4-1x and repeated, turned up to 25 degrees, 1-3 layers, on 150 BSDS500 photos and the Rain100L train-half
# backgrounds, two renderings each).
# Held out: the heavy test set of data_prep.heavy_rain --make=test, the Rain100L test half and its clean images.
# Run from the repository root; ../shared/data as in the README.
set -e
S=$PWD/../shared/data
python -m data_prep.heavy_rain --make=train --recipe=squall --shared=$S --out=runs/squall_train   # 1481 pairs, 150-300 s
python -m data_prep.heavy_rain --make=test --shared=$S --out=runs/heavy_test                      # 55 pairs, 9 s
mkdir -p runs/rain100l_half/test
for i in $(seq 1 50); do n=$(printf %03d $i)
  ln -sf $S/Rain100L/rain-$n.png $S/Rain100L/norain-$n.png runs/rain100l_half/test/; done
# fine-tuned from menet-lb-storm (whose data holds nothing of the held-out sets either);
# 1481 pairs x 10 patches / 20 = 740 steps per epoch; 5 epochs = 3,700 steps, learning rate 3e-4, x0.1 at epoch 4
python -m experiments.train --flagfile=experiments/table1/lp_le_lt_lb_ca.flags --data_dir=runs/squall_train/train \
    --rainy_glob='*/rain-*' --clean_glob='*/norain-*' --model_dir=runs/menet_lb_squall \
    --init_from=menet-lb-storm --epochs=5 --lr=3e-4 --lr_decay_epochs=4 --mixed_precision --seed=2
python -m experiments.ship_model --model_dir=runs/menet_lb_squall --name=menet-lb-squall \
    --summary="MENET-LB (8 residual blocks + channel attention) for heavy rain in real photos: menet-lb-storm's data (RainTrainH's rain moved onto BSDS500 photos and Rain100L backgrounds at 1-3x, turned, 1-2.5 layers, fainter; light data; rain-free pairs) plus the same rain 0.4-1x as fine, 1-3 layers" \
    --training_data_file=docs/model_cards/menet-lb-squall_data.md --commands_file=docs/model_cards/menet-lb-squall_commands.sh \
    --train_wall_time_s=4189 \
    --license_note="Trained on BSDS500 photos (research use) and on Rain100L and RainTrainH and their rain (research data sets distributed by their authors for research use); use these weights under the same terms." \
    --test_dirs="Rain100L test half (pairs 1-50)=runs/rain100l_half/test" \
    --rain_free_dirs="Rain100L test half (pairs 1-50)=runs/rain100l_half/test"
# the held-out heavy set in the standard protocol (as on every card)
python -m experiments.ship_model --name=menet-lb-squall --add_scores --test_protocols=standard \
    --test_dirs="Held-out heavy rain (data_prep.heavy_rain --make=test)=runs/heavy_test"

# Training data and command of menet-lb-downpour (issue 20, heavy rain): RainTrainH's heavy rain moved onto
# 150 BSDS500 test photos and the Rain100L train half's backgrounds, the light data of the default, and the
# RainTrainH / Rain100L training pairs themselves. Held out: the heavy test set of data_prep.heavy_rain
# (RainTrainH pairs 16-20 and their rain on the other 50 BSDS500 photos), the Rain100L test half and its
# clean images (the rain-free score). Run from the repository root; ../shared/data as in the README.
set -e
S=$PWD/../shared/data
python -m data_prep.heavy_rain --make=train --shared=$S --out=runs/heavy_train   # 601 pairs, 45 s
python -m data_prep.heavy_rain --make=test --shared=$S --out=runs/heavy_test     # 55 pairs, 8 s
mkdir -p runs/rain100l_half/test
for i in $(seq 1 50); do n=$(printf %03d $i)
  ln -sf $S/Rain100L/rain-$n.png $S/Rain100L/norain-$n.png runs/rain100l_half/test/; done
# fine-tuned from menet-lb-rain100l (trained on the Rain100L train half only: nothing held out here);
# 601 pairs x 10 patches / 20 = 300 steps per epoch; 40 epochs = 12,000 steps, learning rate x0.1 at 16 and 32
python -m experiments.train --flagfile=experiments/table1/lp_le_lt_lb_ca.flags --data_dir=runs/heavy_train/train \
    --rainy_glob='*/rain-*' --clean_glob='*/norain-*' --model_dir=runs/menet_lb_downpour \
    --init_from=menet-lb-rain100l --epochs=40 --lr_decay_epochs=16 --mixed_precision --seed=0
python -m experiments.ship_model --model_dir=runs/menet_lb_downpour --name=menet-lb-downpour \
    --summary="MENET-LB (8 residual blocks + channel attention) for heavy rain: RainTrainH's rain moved onto BSDS500 photos and Rain100L backgrounds at 1-3x, turned and doubled, with the light data of the default" \
    --training_data_file=docs/model_cards/menet-lb-downpour_data.md --commands_file=docs/model_cards/menet-lb-downpour_commands.sh \
    --train_wall_time_s=6345 \
    --license_note="Trained on BSDS500 photos (research use) and on Rain100L and RainTrainH and their rain (research data sets distributed by their authors for research use); use these weights under the same terms." \
    --test_dirs="Held-out heavy rain (data_prep.heavy_rain --make=test)=runs/heavy_test,Rain100L test half (pairs 1-50)=runs/rain100l_half/test" \
    --rain_free_dirs="Rain100L test half (pairs 1-50)=runs/rain100l_half/test"
# the --model=auto rule: a threshold on the rain the heavy model removes, fitted on the training pairs only
python -m experiments.fit_auto --light=menet-lb-multiscale --heavy=menet-lb-downpour \
    --light_dirs=runs/heavy_train/train/rain100l,runs/heavy_train/train/light_bsds \
    --heavy_dirs=runs/heavy_train/train/heavy_bsds,runs/heavy_train/train/heavy_r100l,runs/heavy_train/train/raintrainh \
    --check="Rain100L test half=light:runs/rain100l_half/test,Held-out heavy rain=heavy:runs/heavy_test,Rain100L test half clean images=free:runs/rain100l_half/test" \
    --out=menet_tf/pretrained/auto.json

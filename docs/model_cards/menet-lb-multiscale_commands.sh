# Training data and command of menet-lb-multiscale (issue 12, the default model for real photos): the Rain100L
# train half of README section (a) plus that half's own rain maps, enlarged 1-3x, moved onto the 200 BSDS500
# *test* photos. Scored on the Rain100L test half (pairs 1-50), on the held-out RainTrainH sample pairs 16-20,
# and on the Rain100L test half with its own rain enlarged 2x and 3x (held-out rain at real photos' scales).
set -e
S=$PWD/../shared/data; D=runs/transplant_data
mkdir -p runs/rain100l_half/train runs/rain100l_half/test $D/rain100l_train runs/raintrainh_heldout runs/scaled_test/clean
for i in $(seq 1 100); do n=$(printf %03d $i)
  if [ $i -le 50 ]; then h=test; else case $i in 58|69|80|91) continue;; esac; h=train; fi
  ln -sf $S/Rain100L/rain-$n.png $S/Rain100L/norain-$n.png runs/rain100l_half/$h/; done
for i in $(seq 51 100); do case $i in 58|69|80|91) continue;; esac; n=$(printf %03d $i)
  ln -sf $S/Rain100L/rain-$n.png $S/Rain100L/norain-$n.png $D/rain100l_train/; done
for i in $(seq 16 20); do ln -sf $S/RainTrainH_sample/rain-$i.png $S/RainTrainH_sample/norain-$i.png runs/raintrainh_heldout/; done
python -m data_prep.synthesize --out $D/bsds_moved --rain_from runs/rain100l_half/train \
    --clean_dir $S/BSDS500_test --scale_range 1,3 --seed 23
# 246 pairs x 10 patches / 20 = 123 steps per epoch; 30 epochs = 3,690 steps, learning rate x0.1 at 12 and 24
python -m experiments.train --flagfile=experiments/table1/lp_le_lt_lb_ca.flags --data_dir=$D \
    --rainy_glob='*/rain-*' --clean_glob='*/norain-*' --model_dir=runs/menet_lb_moved --epochs=30 \
    --lr_decay_epochs=12 --mixed_precision --seed=0
# held-out rain at real photos' scales: the test half's own rain maps, enlarged, on its own clean images
for i in $(seq 1 50); do n=$(printf %03d $i); ln -sf $S/Rain100L/norain-$n.png runs/scaled_test/clean/; done
for s in 2 3; do python -m data_prep.synthesize --out runs/scaled_test/s$s --rain_from runs/rain100l_half/test \
    --clean_dir runs/scaled_test/clean --scale_range $s,$s --seed 31; done
python -m experiments.ship_model --model_dir=runs/menet_lb_moved --name=menet-lb-multiscale \
    --summary="MENET-LB (8 residual blocks + channel attention) for real photos (the default): Rain100L's own rain enlarged 1-3x on BSDS500 test photos, and the Rain100L train half" \
    --training_data_file=docs/model_cards/menet-lb-multiscale_data.md --commands_file=docs/model_cards/menet-lb-multiscale_commands.sh \
    --train_wall_time_s=1588 \
    --license_note="Trained on BSDS500 photos (research use) and Rain100L and its rain (a research data set distributed by its authors for research use); use these weights under the same terms." \
    --test_dirs="Rain100L test half (pairs 1-50)=runs/rain100l_half/test,RainTrainH sample pairs 16-20 (held out)=runs/raintrainh_heldout,Rain100L test half (pairs 1-50) with its own rain 2x larger (seed 31)=runs/scaled_test/s2,Rain100L test half (pairs 1-50) with its own rain 3x larger (seed 31)=runs/scaled_test/s3"

# Training data and command of menet-lb-varied (issue 12, real photos): the Rain100L train half of README
# section (a) plus 'varied' synthetic rain (menet_tf.synthesis; fitted to the Rain100L train half's rain maps,
# docs/gallery.md) at 1-2.5x the benchmark streak scale on the 200 BSDS500 *test* photos, two renders each.
# Scored on the Rain100L test half (pairs 1-50) and the held-out RainTrainH sample pairs 16-20.
set -e
S=$PWD/../shared/data; D=runs/varied_real
python -m data_prep.synthesize --out $D/bsds_varied --style varied --clean_dir $S/BSDS500_test \
    --num_variants 2 --scale_range 1,2.5 --seed 22
mkdir -p $D/rain100l_train runs/raintrainh_heldout
for i in $(seq 51 100); do case $i in 58|69|80|91) continue;; esac; n=$(printf %03d $i)
  ln -sf $S/Rain100L/rain-$n.png $S/Rain100L/norain-$n.png $D/rain100l_train/; done
for i in $(seq 16 20); do ln -sf $S/RainTrainH_sample/rain-$i.png $S/RainTrainH_sample/norain-$i.png runs/raintrainh_heldout/; done
# 446 pairs x 10 patches / 20 = 223 steps per epoch; 36 epochs = 8,028 steps, learning rate x0.1 at 14 and 28
python -m experiments.train --flagfile=experiments/table1/lp_le_lt_lb_ca.flags --data_dir=$D \
    --rainy_glob='*/rain-*' --clean_glob='*/norain-*' --model_dir=runs/menet_lb_varied --epochs=36 \
    --lr_decay_epochs=14 --mixed_precision --seed=0
python -m experiments.evaluate --model_dir=runs/menet_lb_varied --data_dir=runs/rain100l_half/test
python -m experiments.evaluate --model_dir=runs/menet_lb_varied --data_dir=runs/raintrainh_heldout
python -m experiments.ship_model --model_dir=runs/menet_lb_varied --name=menet-lb-varied \
    --summary="MENET-LB (8 residual blocks + channel attention) for benchmark-like rain: varied synthetic rain at 1-2.5x streak scale on BSDS500 test photos and the Rain100L train half" \
    --training_data_file=docs/model_cards/menet-lb-varied_data.md --commands_file=docs/model_cards/menet-lb-varied_commands.sh \
    --train_wall_time_s=3646 \
    --license_note="Trained on BSDS500 photos (research use) and Rain100L (a research data set distributed by its authors for research use); use these weights under the same terms." \
    --test_dirs="Rain100L test half (pairs 1-50)=runs/rain100l_half/test,RainTrainH sample pairs 16-20 (held out)=runs/raintrainh_heldout"

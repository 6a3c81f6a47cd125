# Training data of menet-lb-heavy (planned as the model for real photos; shipped for heavy rain): every source this project may train on,
# none of the images it is scored on. Run from the repository root; ../shared/data as in the README.
set -e
S=$PWD/../shared/data; D=runs/real_data
# 1. BSDS500 *test* photos (disjoint from Rain100L/H), light and heavy synthetic rain, two renders each,
#    streaks 1-3x the benchmark scale (log-uniform per render) and rain accumulation (haze) of 0-0.2 / 0-0.35
python -m data_prep.synthesize --out $D/bsds_light --style light --clean_dir $S/BSDS500_test \
    --num_variants 2 --scale_range 1,3 --haze_range 0,0.2 --seed 11
python -m data_prep.synthesize --out $D/bsds_heavy --style heavy --clean_dir $S/BSDS500_test \
    --num_variants 2 --scale_range 1,3 --haze_range 0,0.35 --seed 12
# 2. the Rain100L train half of README section (a): pairs 51-100 without 58, 69, 80, 91
mkdir -p $D/rain100l_train
for i in $(seq 51 100); do case $i in 58|69|80|91) continue;; esac; n=$(printf %03d $i)
  ln -sf $S/Rain100L/rain-$n.png $S/Rain100L/norain-$n.png $D/rain100l_train/; done
# 3. the RainTrainH sample without pairs 1 and 10 (Rain100H test images) and without 16-20 (held out)
mkdir -p $D/raintrainh_train runs/raintrainh_heldout
for i in $(seq 2 9) $(seq 11 15); do ln -sf $S/RainTrainH_sample/rain-$i.png $S/RainTrainH_sample/norain-$i.png $D/raintrainh_train/; done
for i in $(seq 16 20); do ln -sf $S/RainTrainH_sample/rain-$i.png $S/RainTrainH_sample/norain-$i.png runs/raintrainh_heldout/; done
# 4. MENET-LB (shallow + CA), planned by steps: 859 pairs x 10 patches / 20 = 429 steps per epoch,
#    50 epochs (21,450 steps), learning rate x0.1 at epochs 20 and 40; the four folders read as one set
python -m experiments.train --flagfile=experiments/table1/lp_le_lt_lb_ca.flags --data_dir=$D \
    --rainy_glob='*/rain-*' --clean_glob='*/norain-*' --model_dir=runs/menet_lb_real \
    --epochs=50 --lr_decay_epochs=20 --mixed_precision --seed=0

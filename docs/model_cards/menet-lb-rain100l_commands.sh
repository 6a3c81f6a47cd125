# the split (README, section (a)): folders of symlinks
mkdir -p runs/rain100l_half/{train,test}; S=../shared/data/Rain100L
for i in $(seq 1 100); do n=$(printf %03d $i); d=train; [ $i -le 50 ] && d=test
  case $i in 58|69|80|91) continue;; esac
  ln -sf $PWD/$S/rain-$n.png $PWD/$S/norain-$n.png runs/rain100l_half/$d/; done
# trained as seed 0 of the MENET-LB row of the Table I seed runs (issue 11):
python -m experiments.ablation --data_dir=runs/rain100l_half/train --test_dir=runs/rain100l_half/test \
    --output_dir=runs/table1_seeds --rows=lp,lp_le_lt_lb_ca --seeds=0,1 --mixed_precision --save_images=3
# which for this model runs the equivalent of
python -m experiments.train --flagfile=experiments/table1/lp_le_lt_lb_ca.flags --data_dir=runs/rain100l_half/train \
    --model_dir=runs/table1_seeds/models/lp_le_lt_lb_ca/seed0 --mixed_precision --seed=0
# packaged and scored by
python -m experiments.ship_model --model_dir=runs/table1_seeds/models/lp_le_lt_lb_ca/seed0 --name=menet-lb-rain100l \
    --summary="MENET-LB (8 residual blocks + channel attention) trained on the Rain100L train half (light synthetic rain)" \
    --training_data_file=docs/model_cards/menet-lb-rain100l_data.md \
    --commands_file=docs/model_cards/menet-lb-rain100l_commands.sh --train_wall_time_s=1370 \
    --test_dirs="Rain100L test half (pairs 1-50)=runs/rain100l_half/test" \
    --license_note="Trained on Rain100L, a research data set distributed by its authors for research use; use these weights under the same terms."

# Shared by history.sh and serve.sh (sourced, not run): the release binary and
# vault/examples/history_gen built, and a site in $work/site with $devices files devices
# over $work/plant (one small AWL file each, tagged line0..line9). Needs $root, $work and
# $devices; sets bin, gen, site and cfg.
files_site() {
  cargo build --release --quiet
  cargo build --release --quiet -p vault --example history_gen
  bin=$root/target/release/plcvault
  gen=$root/target/release/examples/history_gen
  rm -rf "$work" && mkdir -p "$work"
  site=$work/site
  "$bin" init "$site" >/dev/null
  cfg=$site/plcvault.toml
  local i
  for i in $(seq -f "%04g" 1 "$devices"); do
    mkdir -p "$work/plant/d$i"
    printf 'NETWORK 1\n A I 0.%s\n = Q 4.0\n' "$i" >"$work/plant/d$i/OB1.awl"
    printf '\n[[device]]\nname = "d%s"\nadapter = "files"\npath = "%s"\ntags = ["line%s"]\n' \
      "$i" "$work/plant/d$i" "$(( 10#$i % 10 ))" >>"$cfg"
  done
}

# Shared by the object-store benchmarks (sourced, not run): a single-node Garage on
# 127.0.0.1 in folder $1 with a bucket `bench` and a key for it. Needs $garage. Sets $s3
# (the S3 port), $gpid, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; the caller stops it.
start_garage() {
  local g=$1 rpc keys node
  mkdir -p "$g"
  port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  s3=$(port); rpc=$(port)
  cat >"$g/garage.toml" <<EOT
metadata_dir = "$g/meta"
data_dir = "$g/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"
EOT
  "$garage" -c "$g/garage.toml" server >"$g/server.log" 2>&1 &
  gpid=$!
  G() { "$garage" -c "$g/garage.toml" "$@"; }
  for _ in $(seq 50); do G status >/dev/null 2>&1 && break; sleep 0.2; done
  node=$(G node id -q | cut -d@ -f1)
  G layout assign -z dc1 -c 10G "$node" >/dev/null
  G layout apply --version 1 >/dev/null
  keys=$(G key create bench)
  AWS_ACCESS_KEY_ID=$(echo "$keys" | sed -n 's/^Key ID: *//p')
  AWS_SECRET_ACCESS_KEY=$(echo "$keys" | sed -n 's/^Secret key: *//p')
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  G bucket create bench >/dev/null
  G bucket allow --read --write --owner bench --key bench >/dev/null
}

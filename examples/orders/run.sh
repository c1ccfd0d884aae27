#!/usr/bin/env bash
# Runs the order-pipeline example: builds the handlers and choreo, starts `choreo serve`
# with the handlers in a fresh deploy folder, publishes sample orders, and keeps serving
# until Ctrl-C. See examples/orders/README.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

listen=${CHOREO_LISTEN:-127.0.0.1:7070}
orders=${CHOREO_EXAMPLE_ORDERS:-200}
work=${CHOREO_EXAMPLE_DIR:-$root/.choreo/example-orders}

echo "==> adding the wasm32-wasip2 target"
rustup target add wasm32-wasip2 >/dev/null
echo "==> building the handlers (wasm32-wasip2) and choreo"
cargo build --quiet --profile guest --target wasm32-wasip2 \
    -p handler-enricher -p handler-router -p handler-counter
cargo build --quiet -p choreo

rm -rf "$work" && mkdir -p "$work/deploy"
for handler in enricher router counter; do
    cp "target/wasm32-wasip2/guest/handler_$handler.wasm" "$work/deploy/$handler.wasm"
done

echo "==> starting choreo serve on http://$listen"
target/debug/choreo serve --listen "$listen" --data-dir "$work/data" --deploy-dir "$work/deploy" \
    2> "$work/serve.log" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 1 100); do
    curl -sf "http://$listen/readyz" >/dev/null 2>&1 && break
    kill -0 $server 2>/dev/null || { cat "$work/serve.log"; exit 1; }
    sleep 0.1
done
curl -sf "http://$listen/readyz" >/dev/null || { echo "choreo did not get ready; log:"; cat "$work/serve.log"; exit 1; }

echo "==> publishing $orders orders"
regions=(eu us apac)
for i in $(seq 1 "$orders"); do
    region=${regions[$((i % 3))]}
    price=$(( (i * 7919) % 90000 + 100 ))
    body="{\"id\":\"o-$i\",\"customer\":\"c-$((i % 17))\",\"region\":\"$region\",\"items\":[{\"sku\":\"s-$((i % 5))\",\"qty\":$((i % 3 + 1)),\"price_cents\":$price}]}"
    curl -sf -o /dev/null -X POST "http://$listen/v1/topics/orders.created" \
        -H 'content-type: application/json' -H "ce-partitionkey: o-$i" --data "$body"
    (( i % 50 == 0 )) && printf '   %d/%d published\n' "$i" "$orders"
done

sleep 1
echo "==> handlers"
target/debug/choreo handlers --url "http://$listen"
echo
echo "==> counter's read model: curl -s http://$listen/v1/query/counter/counts"
curl -s "http://$listen/v1/query/counter/counts"; echo
echo
echo "choreo keeps serving on http://$listen (log: $work/serve.log). Ctrl-C stops it."
wait $server

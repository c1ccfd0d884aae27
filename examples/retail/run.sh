#!/usr/bin/env bash
# Runs the retail choreography: installs what is missing (the wasm32-wasip2 Rust target,
# componentize-py in a project-local venv, componentize-js with `npm ci`), builds the five
# handlers (Rust, Python, JavaScript) and choreo, starts `choreo serve` with them, publishes
# a stream of sample orders, and keeps serving until Ctrl-C. See examples/retail/README.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

listen=${CHOREO_LISTEN:-127.0.0.1:7070}
orders=${CHOREO_EXAMPLE_ORDERS:-200}
work=${CHOREO_EXAMPLE_DIR:-$root/.choreo/example-retail}
target=${CARGO_TARGET_DIR:-$root/target}
# The same tool locations, pins and stamps as sdk/tools (choreo build, the test suite), so
# they and this script install the tools once between them.
tools=$root/target/sdk-tools
venv=$tools/venv
handlers=examples/retail/handlers
url="http://$listen"

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "error: \`$1\` is needed: install $2" >&2; exit 1; }
}
need cargo "Rust with rustup (https://rustup.rs)"
need rustup "rustup (https://rustup.rs)"
need python3 "Python 3.11 or later (Debian: apt-get install python3 python3-venv)"
need node "Node.js 20 or later (https://nodejs.org, or Debian: apt-get install nodejs npm)"
need npm "npm (it comes with Node.js)"
need curl "curl"
mkdir -p "$tools"

echo "==> the wasm32-wasip2 Rust target"
rustup target add wasm32-wasip2 >/dev/null

echo "==> componentize-py (Python handlers) in $venv"
if [[ -x $venv/bin/componentize-py ]] && cmp -s sdk/python/requirements-build.txt "$tools/venv.stamp"; then
    echo "   already installed"
else
    rm -rf "$venv"
    python3 -m venv "$venv" || { echo "error: the Python venv module is missing (Debian: apt-get install python3-venv)" >&2; exit 1; }
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet --timeout 60 \
        -r sdk/python/requirements-build.txt
    cp sdk/python/requirements-build.txt "$tools/venv.stamp"
fi

echo "==> componentize-js (JavaScript handlers) in sdk/js/node_modules"
if [[ -f sdk/js/node_modules/@bytecodealliance/componentize-js/src/cli.js ]] \
    && cmp -s sdk/js/package-lock.json "$tools/npm.stamp"; then
    echo "   already installed"
else
    (cd sdk/js && npm ci --no-audit --no-fund --loglevel error)
    cp sdk/js/package-lock.json "$tools/npm.stamp"
fi

rm -rf "$work" && mkdir -p "$work/deploy" "$work/build"

echo "==> building inventory, notifications, order-view (Rust) and choreo"
cargo build --quiet --profile guest --target wasm32-wasip2 --target-dir "$target" \
    -p retail-inventory -p retail-notifications -p retail-order-view
cargo build --quiet --target-dir "$target" -p choreo
for handler in inventory notifications order-view; do
    cp "$target/wasm32-wasip2/guest/retail_${handler//-/_}.wasm" "$work/build/$handler.wasm"
done

echo "==> building payments (Python) and shipping (JavaScript); each takes 10-40 s"
# A virtualenv the caller has active would add its packages to the component.
env -u VIRTUAL_ENV "$venv/bin/python" sdk/python/build.py "$handlers/payments/app.py" \
    -o "$work/build/payments.wasm" &
python_build=$!
node sdk/js/build.mjs "$handlers/shipping/handler.js" -o "$work/build/shipping.wasm"
wait $python_build

for handler in inventory payments shipping notifications order-view; do
    cp "$handlers/$handler/$handler.toml" "$work/deploy/"
    cp "$work/build/$handler.wasm" "$work/deploy/"
done

echo "==> starting choreo serve on $url (compiling the five components takes a moment)"
"$target/debug/choreo" serve --listen "$listen" --data-dir "$work/data" --deploy-dir "$work/deploy" \
    2> "$work/serve.log" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null' EXIT
# /readyz answers 200 once the components present at startup are loaded; the Python and
# JavaScript ones are large, so allow several minutes on a slow machine.
for i in $(seq 1 3000); do
    curl -sf "$url/readyz" >/dev/null 2>&1 && break
    kill -0 $server 2>/dev/null || { echo "choreo serve stopped; log:"; cat "$work/serve.log"; exit 1; }
    (( i % 50 == 0 )) && printf '   waiting for readiness (%d s)\n' $((i / 10))
    sleep 0.1
done
curl -sf "$url/readyz" >/dev/null || { echo "choreo did not get ready in 300 s; log:"; cat "$work/serve.log"; exit 1; }

# The mix, by order number i: i%10 == 3 asks for more of sku-rare than was ever in stock
# (beside a plentiful sku, which stays untouched: all or none), 6 names an unknown sku and
# 8 asks for too much sku-rare alone (all three rejected by inventory); 5 pays with a card
# ending in 0000 and 7 pays more than payments' limit (both declined, stock released);
# everything else ships.
echo "==> publishing $orders orders on orders.placed"
for i in $(seq 1 "$orders"); do
    sku="sku-$((1 + i % 4))"
    qty=$((1 + i % 3))
    items="{\"sku\":\"$sku\",\"qty\":$qty}"
    card=4242424242424242
    amount=$((qty * 1250))
    case $((i % 10)) in
        3) items="$items,{\"sku\":\"sku-rare\",\"qty\":4}" ;;
        5) card=4242424242420000 ;;
        6) items="$items,{\"sku\":\"sku-unknown\",\"qty\":1}" ;;
        7) amount=$((60000 + i)) ;;
        8) items="{\"sku\":\"sku-rare\",\"qty\":5}" ;;
    esac
    body="{\"order\":\"o-$i\",\"customer\":\"c-$((i % 37))\",\"items\":[$items],\"amount_cents\":$amount,\"card\":\"$card\"}"
    curl -sf -o /dev/null -X POST "$url/v1/topics/orders.placed" \
        -H 'content-type: application/json' -H "ce-partitionkey: o-$i" --data "$body"
    (( i % 25 == 0 || i == orders )) && printf '   %d/%d published\n' "$i" "$orders"
done

echo "==> following the orders through the choreography (order-view's read model)"
for i in $(seq 1 120); do
    summary=$(curl -s "$url/v1/query/order-view/orders")
    printf '   %s\n' "$summary"
    if [[ $summary =~ \"orders\":$orders[,}] ]] && ! grep -Eq '"(placed|reserved|paid|declined)"' <<<"$summary"; then
        break
    fi
    sleep 1
done

cat <<MSG

==> where to look (choreo keeps serving on $url; log: $work/serve.log)
   every order's status:   curl -s $url/v1/query/order-view/orders
   one order's history:    curl -s $url/v1/query/order-view/orders/o-5     (declined, then released)
                           curl -s $url/v1/query/order-view/orders/o-3     (rejected: out of stock)
                           curl -s $url/v1/query/order-view/orders/o-1     (shipped)
   stock left:             curl -s $url/v1/query/inventory/stock
   notifications per kind: curl -s $url/v1/query/notifications/sent
   the handlers:           curl -s $url/v1/handlers    or    $target/debug/choreo handlers --url $url
   the events of a topic:  curl -s '$url/v1/events?pattern=payments.*&limit=5'
MSG
if "$target/debug/choreo" tail --help >/dev/null 2>&1; then
    echo "   watch events live:      $target/debug/choreo tail '>' --url $url"
fi
if curl -sf -o /dev/null "$url/portal"; then
    echo "   the event portal:       $url/portal"
fi
echo
echo "Ctrl-C stops it."
wait $server

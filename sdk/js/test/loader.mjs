// Resolves choreo's WIT import specifiers (`choreo:handler/<interface>@<version>`) to the
// fakes in fake/<interface>.js, so the SDK's modules load under plain Node.js.
// Used as `npm test`.

const FAKES = new URL('./fake/', import.meta.url);

export async function resolve(specifier, context, next) {
  if (specifier.startsWith('choreo:handler/')) {
    const name = specifier.slice('choreo:handler/'.length).split('@')[0];
    return { url: new URL(`${name}.js`, FAKES).href, shortCircuit: true };
  }
  return next(specifier, context);
}

// Validates FHIR R4 transaction Bundles, one "label\tjson" per line on
// stdin, with the validator of the npm `fhir` package (FHIR.js, R4). Prints
// one line per Bundle with errors and exits 1 if any.
const {Fhir} = require('fhir');
const fhir = new Fhir();
const readline = require('readline');
const rl = readline.createInterface({input: process.stdin});
let n = 0, bad = 0;
rl.on('line', line => {
  if (!line) return;
  const tab = line.indexOf('\t');
  const label = line.slice(0, tab);
  const res = fhir.validate(JSON.parse(line.slice(tab + 1)));
  n++;
  const errors = res.messages.filter(m => m.severity === 'error');
  if (!res.valid || errors.length) { bad++; console.log(label + ': ' + JSON.stringify(errors.slice(0, 5))); }
});
rl.on('close', () => { console.error(`validated ${n} bundles, ${bad} invalid`); process.exit(bad ? 1 : 0); });

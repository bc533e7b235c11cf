// Dumps the hl7-dictionary npm package (MIT) as one JSON document on stdout,
// so the Python generator can read it without a JavaScript parser.
// Usage: node dump_dictionary.js /path/to/node_modules/hl7-dictionary
const path = require('path');
const dir = path.resolve(process.argv[2]);
const dict = require(dir);
dict._version = require(path.join(dir, 'package.json')).version;
process.stdout.write(JSON.stringify(dict));

// `corridor get FILE MSH-10 PID-3 OBX-5` done with a Node HL7 parser.
//
// usage: node get_node.js node-hl7-client|simple-hl7 FILE
// (segments end in CR; a message starts at MSH). The packages are installed
// by compare_get.sh under target/node-bench.
const fs = require("fs");
const [, , parser, file] = process.argv;
const data = fs.readFileSync(file, "latin1");
const chunks = data.split("\rMSH|").map((c, i) => (i === 0 ? c : "MSH|" + c));
const out = [];
if (parser === "node-hl7-client") {
  const { Message } = require("node-hl7-client");
  for (const text of chunks) {
    const message = new Message({ text });
    for (const path of ["MSH.10", "PID.3", "OBX.5"]) {
      out.push(message.get(path).toRaw()); // toString() gives only the first component
    }
  }
} else if (parser === "simple-hl7") {
  const hl7 = require("simple-hl7");
  const parser = new hl7.Parser({ segmentSeperator: "\r" });
  for (const text of chunks) {
    const message = parser.parse(text);
    out.push(message.header.getField(8)); // simple-hl7 numbers MSH from MSH-3
    out.push(message.getSegment("PID").getField(3)); // getField(3, 1) throws in 3.x
    out.push(message.getSegment("OBX").getField(5));
  }
} else {
  throw new Error("unknown parser " + parser);
}
fs.writeSync(1, out.join("\n") + "\n");

// The interop matrix's Node.js client (interop_matrix_test.cc): sends the
// text read from stdin (UTF-8) with nodemailer's SMTP transport and AUTH, as
// a Node.js application does. Usage: node clients.js PORT USER PASSWORD.
// nodemailer is Debian's node-nodemailer (/usr/share/nodejs, which a
// nodejs not built by Debian does not search) or any the resolver finds.
// Prints one JSON object: nodemailer's version and the server's reply to the
// message. Exits 77 (skipped) with the reason on stderr when nodemailer is
// missing. Bounds its own time with the transport's timeouts.
'use strict';
const fs = require('fs');

function load() {
  for (const where of ['nodemailer', '/usr/share/nodejs/nodemailer']) {
    try {
      return { nodemailer: require(where), dir: require('path').dirname(require.resolve(where + '/package.json')) };
    } catch (e) {
      // try the next place
    }
  }
  console.error('nodemailer not found (neither on the resolver path nor in /usr/share/nodejs); ' +
    'scripts/deps installs node-nodemailer');
  process.exit(77);
}

const [port, user, pass] = process.argv.slice(2);
const { nodemailer, dir } = load();
const version = JSON.parse(fs.readFileSync(dir + '/package.json', 'utf8')).version;
const transport = nodemailer.createTransport({
  host: '127.0.0.1', port: Number(port), secure: false, ignoreTLS: true, auth: { user, pass },
  connectionTimeout: 20000, greetingTimeout: 20000, socketTimeout: 20000,
});
transport.sendMail({
  from: '+393401234567@sms.example.com',
  to: '+393331234567@sms.example.com',
  subject: 'prova',
  text: fs.readFileSync(0, 'utf8'),
}, (err, info) => {
  const reply = err ? String(err.response || err.message) : info.response;
  console.log(JSON.stringify({ version: 'nodemailer ' + version + ', Node.js ' + process.versions.node, reply }));
  process.exit(0);
});

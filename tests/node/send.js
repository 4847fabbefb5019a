// send.js PORT FILE... - sends each HL7 file to 127.0.0.1:PORT with npm's
// node-hl7-client, waiting for each ACK, and prints "ACK <MSA-1> <MSA-2> <file>".
// Exit 0 when every file got an ACK, 1 otherwise.
'use strict'
const fs = require('fs')
const { Client, Message } = require('node-hl7-client')

async function main () {
  const port = parseInt(process.argv[2], 10)
  const files = process.argv.slice(3)
  const client = new Client({ host: '127.0.0.1' })
  let pending = null
  const conn = client.createConnection({ port, waitAck: true }, async (res) => {
    const msg = res.getMessage()
    if (pending) {
      const p = pending
      pending = null
      p(msg.get('MSA.1').toString() + ' ' + msg.get('MSA.2').toString())
    }
  })
  let missing = 0
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8').replace(/\r$/, '')
    let message
    try {
      message = new Message({ text })
    } catch (e) {
      // node-hl7-client's own parser refuses it: nothing is sent.
      console.log('CLIENTREFUSED ' + file + ' ' + String(e.message).split('\n')[0])
      continue
    }
    const got = new Promise((resolve) => {
      pending = resolve
      setTimeout(() => resolve(null), 10000)
    })
    await conn.sendMessage(message)
    const ack = await got
    if (ack === null) {
      missing++
      console.log('NOACK ' + file)
    } else {
      console.log('ACK ' + ack + ' ' + file)
    }
  }
  await conn.close()
  process.exit(missing ? 1 : 0)
}

main().catch((e) => { console.error(e); process.exit(2) })

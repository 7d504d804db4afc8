// kafkajs 2.2.4 against a strata broker: the admin client creates a topic,
// the producer writes records with acks -1 (one batch gzip-compressed), two
// consumers in one group read everything from the beginning and commit, then a
// restarted consumer in the same group reads only what an idempotent producer
// wrote after; last, admin calls on the group and the topic.
//
// Environment: BROKERS (host:port[,host:port...]), RF (the replication factor
// of the topic it creates), TOPIC, GROUP, N (records in the first
// round), M (records in the second), BASE (record 0's timestamp in ms),
// KAFKAJS_LOG (a kafkajs log level; logs go to stderr). Prints one JSON line
// on stdout; exits non-zero on any error.
'use strict'

const crypto = require('crypto')
const { Kafka, logLevel, CompressionTypes } = require('kafkajs')

const env = name => {
  const v = process.env[name]
  if (!v) throw new Error(`${name} not set`)
  return v
}
const brokers = env('BROKERS').split(',')
const rf = Number(env('RF'))
const topic = env('TOPIC')
const groupId = env('GROUP')
const n = Number(env('N'))
const m = Number(env('M'))
const base = Number(env('BASE'))

const logCreator = () => ({ namespace, level, log }) => {
  const { message, timestamp, logger, ...extra } = log
  process.stderr.write(`${timestamp} ${logLevel[level] || level} [${namespace}] ${message} ${JSON.stringify(extra)}\n`)
}

const kafka = new Kafka({
  clientId: 'strata-compat-kafkajs',
  brokers,
  logLevel: logLevel[process.env.KAFKAJS_LOG || 'INFO'],
  logCreator,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 10 },
})

// Record i, the same bytes as compatKey/compatValue in e2e/compat_test.go.
const key = i => Buffer.from(`key-${i % 61}`)
const value = i => {
  if (i % 97 === 0) return Buffer.alloc(0)
  const head = Buffer.from(`${topic}-${String(i).padStart(6, '0')}|`)
  const body = Buffer.alloc((i * 37) % 2000)
  for (let j = 0; j < body.length; j++) body[j] = (i + j) & 255
  return Buffer.concat([head, body])
}
const headers = i => (i % 3 === 0 ? { i: String(i), h: `h${i}`, empty: '' } : { i: String(i) })

// Checksum over records in index order: for each, the lengths and bytes of
// key, value and the h header, and the timestamp (e2e/compat_kafkajs_test.go
// computes the same from its own copy of the records).
const checksum = recs => {
  const h = crypto.createHash('sha256')
  const put = b => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(b.length)
    h.update(len)
    h.update(b)
  }
  for (const r of [...recs].sort((a, b) => a.i - b.i)) {
    put(r.key)
    put(r.value)
    put(r.h)
    put(Buffer.from(String(r.timestamp)))
  }
  return h.digest('hex')
}

async function produce(producer, from, count) {
  let sent = 0
  for (let start = from; start < from + count; start += 500) {
    const messages = []
    for (let i = start; i < Math.min(start + 500, from + count); i++) {
      messages.push({ key: key(i), value: value(i), headers: headers(i), timestamp: String(base + i) })
    }
    const compression = start === from ? CompressionTypes.GZIP : CompressionTypes.None
    const res = await producer.send({ topic, acks: -1, compression, messages })
    for (const r of res) {
      if (r.errorCode !== 0) throw new Error(`produce: ${JSON.stringify(r)}`)
    }
    sent += messages.length
  }
  return sent
}

// consume runs `members` consumers in the group until they have seen `want`
// distinct records between them, then disconnects them (committing first).
// With whenJoined, it waits until every member holds a share of the partitions
// (the latest assignments cover all three, without overlap), then calls it.
async function consume(members, want, label, whenJoined) {
  const assigned = new Array(members).fill(null)
  let joined
  const allJoined = new Promise(resolve => (joined = resolve))
  const checkJoined = () => {
    if (assigned.some(a => a === null || a.length === 0)) return
    const parts = assigned.flat()
    if (parts.length === 3 && new Set(parts).size === 3) joined()
  }
  const seen = new Map()
  let dups = 0
  const perMember = []
  let done
  const finished = new Promise(resolve => (done = resolve))
  const consumers = []
  for (let c = 0; c < members; c++) {
    const consumer = kafka.consumer({
      groupId,
      sessionTimeout: 10000,
      rebalanceTimeout: 10000,
      heartbeatInterval: 300,
      maxWaitTimeInMs: 200,
      retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 10 },
    })
    consumers.push(consumer)
    perMember.push(0)
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      assigned[c] = payload.memberAssignment[topic] || []
      checkJoined()
    })
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const i = Number(message.headers.i.toString())
        if (seen.has(i)) dups++
        seen.set(i, {
          i,
          partition,
          offset: message.offset,
          key: message.key || Buffer.alloc(0),
          value: message.value || Buffer.alloc(0),
          h: message.headers.h || Buffer.alloc(0),
          timestamp: message.timestamp,
        })
        perMember[c]++
        if (seen.size >= want) done()
      },
    })
  }
  const timer = setTimeout(() => {
    done(new Error(`${label}: ${seen.size} of ${want} records in 60s; assignments ${JSON.stringify(assigned)}`))
    joined()
  }, 60000)
  if (whenJoined) {
    await allJoined
    await whenJoined()
  }
  const err = await finished
  clearTimeout(timer)
  if (err) throw err
  // Let the runners commit the offsets of the batch in hand, then leave.
  await Promise.all(consumers.map(c => c.disconnect()))
  return { recs: [...seen.values()], dups, perMember }
}

async function main() {
  const admin = kafka.admin()
  await admin.connect()
  const created = await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic, numPartitions: 3, replicationFactor: rf, configEntries: [{ name: 'retention.ms', value: '86400000' }] }],
  })
  const again = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] })
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  const configs = await admin.describeConfigs({ resources: [{ type: 2, name: topic, configNames: ['retention.ms'] }] })

  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false })
  await producer.connect()
  const first = await consume(2, n, 'group', () => produce(producer, 0, n))
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
  const ends = await admin.fetchTopicOffsets(topic)

  // The second round through an idempotent producer (InitProducerId v1).
  const idem = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 })
  await idem.connect()
  await produce(idem, n, m)
  await idem.disconnect()
  const second = await consume(1, m, 'restarted')
  await producer.disconnect()

  // Admin calls on the group and topic: offsets by timestamp, an offset reset
  // by the admin client (a commit with no generation), list, describe and
  // delete the group, create and delete a topic.
  const byTs = await admin.fetchTopicOffsetsByTimestamp(topic, base)
  await admin.resetOffsets({ groupId, topic, earliest: true })
  const reset = await admin.fetchOffsets({ groupId, topics: [topic] })
  const listed = await admin.listGroups()
  const described = await admin.describeGroups([groupId])
  const deletedGroups = await admin.deleteGroups([groupId])
  const listedAfter = await admin.listGroups()
  const doomed = `${topic}-deleted`
  await admin.createTopics({ topics: [{ topic: doomed }] })
  await admin.deleteTopics({ topics: [doomed] })
  const topicsAfter = await admin.listTopics()
  await admin.disconnect()

  const result = {
    created,
    createdAgain: again,
    partitions: md.topics[0].partitions.length,
    retentionMs: configs.resources[0].configEntries.map(e => e.configValue),
    first: { count: first.recs.length, dups: first.dups, perMember: first.perMember, checksum: checksum(first.recs) },
    committed: committed[0].partitions.map(p => ({ partition: p.partition, offset: p.offset })).sort((a, b) => a.partition - b.partition),
    ends: ends.map(p => ({ partition: p.partition, offset: p.high })).sort((a, b) => a.partition - b.partition),
    second: {
      count: second.recs.length,
      dups: second.dups,
      minIndex: Math.min(...second.recs.map(r => r.i)),
      checksum: checksum(second.recs),
    },
    offsetsByTimestamp: byTs.map(p => p.offset),
    resetOffsets: reset[0].partitions.map(p => p.offset),
    groups: listed.groups.map(g => `${g.groupId}/${g.protocolType}`),
    groupState: described.groups.map(g => `${g.groupId}/${g.state}/${g.members.length}`),
    deletedGroups: deletedGroups.map(g => `${g.groupId}/${g.errorCode}`),
    groupsAfterDelete: listedAfter.groups.map(g => g.groupId),
    topicDeleted: topicsAfter.includes(topic) && !topicsAfter.includes(doomed),
  }
  process.stdout.write(JSON.stringify(result) + '\n')
}

main().then(
  () => process.exit(0),
  err => {
    process.stderr.write(`FAILED: ${err && err.stack ? err.stack : err}\n`)
    process.exit(1)
  }
)

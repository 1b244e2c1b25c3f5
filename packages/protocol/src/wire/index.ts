/** Wire types shared by every side: the message codec and (from the relay) the event contract. */
export * from './message.js';
export * from './relay.js';

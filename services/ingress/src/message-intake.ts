import type { AnyEvent, MessageAcceptedPayload, StoreRef } from '@moat/contracts';
import { routingKeys } from '@moat/contracts';
import { MoatError, type Logger } from '@moat/runtime';
import type { StoredMessage } from '@moat/store';

/** The two durable steps of accepting a message, as the intake sees them. */
export interface IntakeDeps {
  store: {
    put(msg: StoredMessage): Promise<StoreRef>;
    delete(ref: StoreRef): Promise<void>;
  };
  broker: {
    envelope(type: 'message.accepted', payload: MessageAcceptedPayload, id?: string): AnyEvent;
    /** Resolves only on a publisher confirm for a routed message (a returned message rejects). */
    publish(routingKey: string, event: AnyEvent): Promise<void>;
  };
  log: Logger;
}

export interface Intake {
  message: StoredMessage;
  /** The event payload minus the store reference, which the store write gives. */
  payload: Omit<MessageAcceptedPayload, 'store'>;
  /** The event id: derived from the message id, so a re-publish of the same message collapses. */
  eventId: string;
}

/**
 * Makes a message durable (DESIGN.md promise 1): the body is committed to the message store,
 * then `message.accepted` is confirmed by the broker. Only when both are done may the client get
 * 250. On any failure nothing is left half-done: a stored body whose event did not make it is
 * deleted again (best effort; a leftover is an orphan row, never a lost message, because the
 * client got 4xx and still holds the message).
 *
 * `signal` is the caller's deadline: once it fired the client has been told 451, so a store write
 * that completes late is undone instead of being published.
 */
export async function commitMessage(deps: IntakeDeps, intake: Intake, signal: AbortSignal): Promise<MessageAcceptedPayload> {
  const ref = await deps.store.put(intake.message);
  const payload: MessageAcceptedPayload = { ...intake.payload, store: ref };
  try {
    if (signal.aborted) throw new MoatError('HANDLER_TIMEOUT', 'intake deadline passed before publishing');
    await deps.broker.publish(routingKeys.messageAccepted, deps.broker.envelope('message.accepted', payload, intake.eventId));
  } catch (err) {
    await deps.store.delete(ref).catch((deleteErr: unknown) =>
      deps.log.error(
        { messageId: ref.messageId, receivedAt: ref.receivedAt, err: (deleteErr as Error).message },
        'could not delete a stored message whose message.accepted was not published; the row is an orphan',
      ),
    );
    throw err;
  }
  return payload;
}

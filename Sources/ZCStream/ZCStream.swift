// ZCStream: the library in one import.
//
// `import ZCStream` brings in the sender (OutboundStream, StreamSender and their
// configuration), the receiver (StreamReceiver, ValidatingCore, SequenceTracker),
// the wire protocol (DatagramHeader, Datagram, PayloadPattern, CRC32C) and the
// system layer they stand on (SocketAddress, SystemError, StopFlag).
@_exported import Receiver
@_exported import Sender
@_exported import StreamProtocol
@_exported import ZCSystem

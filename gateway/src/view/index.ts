export { MalformedBlockError, parseBlock, type KeyWrite, type ParsedBlock } from './block-parser';
export { compareViews, type ViewComparison, type ViewDifference } from './compare';
export { DEFAULT_MAX_LAG_MS, DEFAULT_POLL_MS, LedgerView, type BlockSource, type BlockStream, type LedgerViewOptions, type ViewStatus } from './ledger-view';
export { rebuildAndCompare, rebuildView, type RebuildOptions } from './rebuild';
export { replayAccessHistory, replayPatient, type EntryReplay, type ReplayLedger, type ReplayOptions, type ReplayReport } from './replay';
export { VIEW_FILE_NAME, VIEW_TABLES, ViewGapError, ViewStore, ViewValueError, type ViewCheckpoint, type ViewSnapshot, type ViewTable } from './view-store';

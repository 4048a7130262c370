/** Imported first by benchmarks that run the chaincode contracts in memory: fabric-contract-api logs each annotation at info otherwise. */
process.env.CORE_CHAINCODE_LOGGING_LEVEL ??= 'error';

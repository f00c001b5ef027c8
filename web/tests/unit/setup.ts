// test setup
